"""The synthetic corpus generator, the embedded default: subjects and videos (plan), expression states, behaviour over time, face geometry, and the files it writes (generate)."""

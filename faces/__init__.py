"""The face stage, upstream of OpenFace CSVs: rendered faces with known AUs, readers for the real
label layouts, face crops from video, and AU detectors trained on them (Fung & McDuff).

Stable entry points for other stages:
    faces.synthetic.render_faces / render_video / render_stills   rendered faces + per-frame AU truth
    faces.render.FaceRenderer                                      AUs + identity + scene -> frames
    faces.landmarks                                                68-point model, AU basis, projection
"""

"""The downstream tasks and their targets: the synthetic generator writes them, train.py reads them."""
TASK_TARGETS = {
    # task A (schizophrenia): per-patient PANSS items, 1-7 (METHOD.md section 5)
    "task_a": ("conceptual_disorganisation", "flow_of_conversation", "hallucinations", "suspiciousness", "delusions"),
    # task B (depression, AVEC 2019 DDS): PHQ-8, 0-24
    "task_b": ("phq8",),
}
TASKS = tuple(TASK_TARGETS)

"""XAI faithfulness: attributions, removal/in-painting baselines, metrics, statistics,
formal sufficiency of top-k explanations, and reports.

Submodules import torch (and captum, OpenCV, scikit-image lazily); importing
``hdsl.xai`` itself is cheap.
"""

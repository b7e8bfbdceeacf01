"""Causal alignment: does a network implement a high-level causal model under an alignment?

Modules: ``model`` (finite structural causal models, exact vectorised evaluation),
``alignment`` (variables -> neuron ranges or rotated coordinates of graph nodes; input
encodings), ``intervene`` (batched interchange interventions on an ``hdsl.nn`` graph),
``iia`` (exhaustive/sampled IIA with its baselines), ``stats`` (Clopper–Pearson), ``das``
(learned rotations), ``formal`` (bound-propagation proofs over pair regions), ``replay``
(onnxruntime confirmation), ``tasks`` (example networks), ``spec``/``ir``/``handler``
(the language, its IR node and the planner handler), ``pyvene_compat`` (optional agreement).
Heavy libraries (torch, onnx) are imported inside functions.
"""

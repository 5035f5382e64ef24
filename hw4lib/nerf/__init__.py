"""DVGO (Problem 1), from the equations up.

The maths: :mod:`.render` (the report's equations, one function each), :mod:`.rays` (cameras,
rays, the marcher), :mod:`.grid` (voxel grids and their trilinear lookup, C++ kernels built by
:mod:`.kernels`), :mod:`.dvgo` (the voxel model, built from those). Training:
:mod:`.raydata` (training rays, view counts), :mod:`.sampling` (which rays a step draws),
:mod:`.optim` (DVGO v2's masked Adam), :mod:`.train` (the two stages),
:mod:`.saved` (model and checkpoint files). Around them: :mod:`.run` (a run as asked for by
the CLI and the notebooks: :class:`~.run.TrainRequest`, :func:`~.run.train_run`),
:mod:`.images` (rendering and writing views), :mod:`.sweep` (the step-size/voxel sweep),
:mod:`.activation2d` (the pre/in/post-activation figure) and :mod:`.bench`.
"""

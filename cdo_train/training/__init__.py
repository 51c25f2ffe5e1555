"""One ``cdo-train`` run from config to run folder: the config, the step, the run, its evaluation and files.

* the run's options: :mod:`.config` (``TrainConfig``);
* the trainers: :mod:`.trainer` (one process), :mod:`.distributed` (DDP); both drive a
  :class:`~cdo_train.training.run.TrainingRun` (:mod:`.run`), whose progress bar is
  :mod:`.progress` and whose end is :mod:`.finish`;
* the step: :mod:`.step`, :mod:`.loss`, :mod:`.meters`; curricula: :mod:`.curriculum`
  (the difficulty over the run), :mod:`.ordering` (easiest images first);
* stopping and resuming: :mod:`.signals`, :mod:`.checkpoint`;
* evaluation: :mod:`.evaluation`, :mod:`.metrics`, :mod:`.visualize`;
* the run folder: :mod:`.run_folder` (its file names and the torch-free reader),
  :mod:`.run_writer` (writing it), :mod:`.saved_model` (the weights in it).

Submodules are imported on demand (this package imports nothing), so the torch-free ones
(:mod:`.config`, :mod:`.run_folder`, :mod:`.metrics`, :mod:`.visualize`) load without PyTorch.
"""

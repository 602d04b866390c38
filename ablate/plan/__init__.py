"""`ablate plan`: size a recipe or a study before asking for GPUs, from the models' configs (on the
meta device, no weights), the stages' data and DeepSpeed settings, and a GPU's datasheet.

- `gpus`: the GPU table (peak dense FLOP/s per precision, memory);
- `models`: each model on the meta device, with the rehearsal kit's full-size configs standing in
  for checkpoints that are not on the machine;
- `params`, `flops`, `memory`: the counts and formulas;
- `data`: a stage's records and their lengths (a sample of its files, or the documented sizes);
- `mfu`: which model-FLOPs utilisation the estimate uses, and where it comes from;
- `estimate`: a recipe's or a study's plan; `render`: its text and JSON.
"""

"""`ablate run`: build a recipe's model and data, train its stages, evaluate, record."""

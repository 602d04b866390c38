"""Recipes: YAML experiments validated by pydantic. See `load_recipe`."""

from ablate.recipe.loading import load_recipe, recipe_hash, recipe_from_dict  # noqa: F401

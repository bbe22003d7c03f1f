"""``chefmate-study``: the data × tuning × training-seed experiment, from demos to the published answer."""

"""`oec experiment`: the method's comparison, one arm per data source or ablation, on one held-out task set."""

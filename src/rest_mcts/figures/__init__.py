"""What every figure of the project shares: human axis labels (`labels`), binomial
intervals on accuracies (`intervals`) and series that stay visible when they overlap
(`style`). Used by the sweep summary's plots and the loop's ``accuracy.png``."""

"""`rrhf train`: fine-tune a causal LM with the RRHF loss (ranking on length-normalised log-probs + SFT)."""

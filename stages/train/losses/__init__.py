"""The train stage's losses: one module per loss, each a pure function of per-response log-prob sums (`common`
says what they share); `catalog` names them and their papers' defaults without importing torch."""

"""asv suites for fashionbench: training, inference and memory/GPU figures over framework × model × device."""

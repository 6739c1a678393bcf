"""The model families, one module each (naive, linear, networks, ensemble) on one contract
(`families.Forecaster`); `families` lists them and loads any saved one. The networks'
module imports TensorFlow, so it is imported only where a network is fitted or loaded."""

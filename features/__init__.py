"""From pixels to per-field numbers: indices, zonal statistics, time series features."""

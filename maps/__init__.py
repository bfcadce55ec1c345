"""What people look at: styled GeoPackages, maps and the run report."""

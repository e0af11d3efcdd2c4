"""Reports: rollups kept current by the pipelines, queries over them, CSV export."""

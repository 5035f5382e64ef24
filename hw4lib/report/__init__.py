"""The report layer: the papermill runner, tables and figures built from the results store."""

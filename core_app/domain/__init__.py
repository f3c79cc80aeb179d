"""Domain rules that know no HTTP and no SQL: workflow, deadlines, roles."""

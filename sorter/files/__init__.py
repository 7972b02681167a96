"""Runs on disk, with no torch: finding photos, placing them, the journal, undo, the corrections
store and the feature store. Everything a sort writes, and how it is read back."""

"""One module per dashboard (UID, build()); the builder finds them here."""

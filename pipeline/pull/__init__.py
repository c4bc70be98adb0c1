"""`sessions pull`: sessions straight from the Syllable API, kept raw, then ingested."""

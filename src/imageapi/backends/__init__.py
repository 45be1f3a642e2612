"""Model adapters. Each backend is one self-contained file; torch lives only here."""

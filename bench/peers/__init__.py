"""Peer systems for bench/peers.py: one module per system, each behind the same small interface (_base.py)."""

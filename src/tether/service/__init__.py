"""The service's parts (issue 19): API keys now; the HTTP API, chat memory and the web page build on them."""

from tether.service._keys import ApiKey, KeyStore, open_key_store

__all__ = ["ApiKey", "KeyStore", "open_key_store"]

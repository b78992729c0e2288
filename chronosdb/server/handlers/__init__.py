"""Endpoint handlers: each takes the server and a Request and returns a Response."""

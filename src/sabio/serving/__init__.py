"""Serving: the model worker (`sabio serve-model`) and the runtime router in the server."""

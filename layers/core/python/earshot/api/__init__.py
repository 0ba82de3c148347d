"""Endpoints: parse an ``ApiRequest``, call one service, render the response."""

"""WHIP (RFC 9725) and WHEP endpoints: HTTP and SDP in, media service calls, SDP out."""

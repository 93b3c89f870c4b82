"""What ``aura bench`` computes without I/O: when each request is due, and the statistics of
what was measured (DESIGN section 11); pure."""

"""Orders: every win becomes one, one order per unit, database constraints as the final fence."""

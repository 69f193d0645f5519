"""The node (``memoturnd``): its open branches and tiers, branching, authentication, and ``main``."""

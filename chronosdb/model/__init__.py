"""Pure shared values: field types, series keys, the columnar write batch, errors.

Nothing here touches files or sockets; every other layer may import it.
"""

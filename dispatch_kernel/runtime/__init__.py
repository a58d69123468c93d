"""What runs beside a function: the worker loop, the fork server and the run context.

Only the standard library and cloudpickle may be imported here: these modules run inside a
function's own environment.
"""

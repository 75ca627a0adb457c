"""What nodedrop's services share: workflow definitions, the event catalogue, subjects, config.

Nothing here opens a connection; every module is importable on its own.
"""

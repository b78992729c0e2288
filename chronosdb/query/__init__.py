"""The query layer: InfluxQL text -> AST (``influxql``), then compile, plan and execute.

It sees storage only through a narrow interface and never imports the cluster layer.
"""

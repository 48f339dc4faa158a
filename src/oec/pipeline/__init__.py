"""`oec run CONFIG`: collect -> filter -> export -> train -> eval, each stage skipped when its output is current."""

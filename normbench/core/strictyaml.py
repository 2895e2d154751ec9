"""YAML as normbench reads it: safe_load without aliases or duplicate keys (config files,
--set values, model.layers files). Bottom of the package: imports nothing of normbench."""

import yaml


class Refused(yaml.YAMLError):
    """YAML that safe_load would accept but normbench refuses (aliases, duplicate keys)."""

    def __init__(self, mark, problem: str):
        super().__init__(problem)
        self.line = mark.line + 1
        self.problem = problem


class StrictLoader(yaml.SafeLoader):
    """safe_load without aliases (a 465-byte "billion laughs" of nested aliases expands
    exponentially wherever the values are copied or printed) and without duplicate
    keys (PyYAML lets the last one win silently)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise Refused(event.start_mark, f"YAML aliases (*{event.anchor}) are not supported; write the value out in full")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # PyYAML reports unhashable keys itself
                key = self.construct_object(key_node)
                if key in seen:
                    raise Refused(
                        key_node.start_mark,
                        f"duplicate key {key!r} (first at line {seen[key]}); keep only one",
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml_strict(text: str):
    """yaml.safe_load, refusing aliases and duplicate keys (raises Refused)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass

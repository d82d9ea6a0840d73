"""The errors lstmgen raises on bad specs and bad inputs."""


class SpecError(ValueError):
    """A spec argument is invalid: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, context: str = ""):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.context = context
        where = f" for {context}" if context else ""
        super().__init__(f"{field}={value!r}{where}: {allowed}")

    def within(self, context: str) -> "SpecError":
        """The same error, naming the spec or layer it came from."""
        return SpecError(self.field, self.value, self.allowed, context)


class ModelImportError(ValueError):
    """A model (file, Keras object or torch module) cannot be imported: names the source, the
    layer (or None when the problem is the whole source) and the problem."""

    def __init__(self, source: str, layer, problem: str):
        self.source = source
        self.layer = layer
        self.problem = problem
        where = f", layer {layer!r}" if layer is not None else ""
        super().__init__(f"{source}{where}: {problem}")

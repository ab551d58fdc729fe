"""Models: load (hub, local, bundled) or build at random init, PEFT methods, adapters and merges, tiny builders."""

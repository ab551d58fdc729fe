"""The offline demo: a generated DialogSum-style corpus (``sumlab.demo.corpus``) and its scenarios."""

from shoal import ObjectRef  # noqa

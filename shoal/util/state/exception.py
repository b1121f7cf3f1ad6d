"""The state API's error, at Ray's path (``ray.util.state.exception``)."""


class StateApiException(Exception):
    """A state query failed, was given a filter it cannot apply, or
    (``raise_on_missing_output``) some processes did not answer in time, so the result
    would be incomplete."""


RayStateApiException = StateApiException

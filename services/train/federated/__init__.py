"""Federated training: the model travels to the sites, their rows never leave them (issue 21).

- ``statistics``: what a site tells the hub so the hub can fit the preprocessing (pure: numpy).
- ``local_fit``: a site's round of training, FedAvg or FedProx, on the train code's network and loss (torch).
- ``hub``: the rounds, k of n sites, averaging (pure: numpy; the transport is a Protocol).
- ``site``: what a site answers, from its own ``Dataset`` only.
- ``flower_app``: the same hub and site over Flower's deployment engine (SuperLink, one SuperNode per site).
"""

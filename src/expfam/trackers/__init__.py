"""The built-in trackers ([`expfam.tracker`][expfam.tracker]): MLflow, behind the `expfam[mlflow]` extra.

They register through the `expfam` entry-point group like a third party's
([`expfam.trackers.plugin`][expfam.trackers.plugin]); the class imports without MLflow installed and
says how to install it when it is made.
"""

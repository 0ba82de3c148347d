"""Earshot's CDK app: one ``Earshot-<stage>`` stack per stage, composed of one construct per capability."""

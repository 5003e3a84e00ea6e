"""Typed task functions per modality (pretrain, probe, finetune, forecast, impute, ...), callable from a
notebook; the command line only parses arguments and calls them."""

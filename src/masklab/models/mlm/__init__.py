"""BERT-style masked language modelling: the BERT encoder, the MLM head and the classifier head."""

from masklab.models.mlm.bert import Bert, BertConfig, bert_preset
from masklab.models.mlm.model import MASKINGS, BertForMLM, MLMConfig

__all__ = ["MASKINGS", "Bert", "BertConfig", "BertForMLM", "MLMConfig", "bert_preset"]

"""BERT-style masked language modelling: the BERT encoder, the MLM head and the classifier head."""

from masklab.models.mlm.bert import Bert, BertConfig
from masklab.models.mlm.config import MASKINGS, PRESETS, MLMConfig, mlm_preset
from masklab.models.mlm.model import BertForMLM, MLMDraw

__all__ = ["MASKINGS", "PRESETS", "Bert", "BertConfig", "BertForMLM", "MLMConfig", "MLMDraw", "mlm_preset"]

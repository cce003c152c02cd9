"""CamVid class ids the synthetic scenes are labelled with."""

from __future__ import annotations

from drivseg.data.camvid import CAMVID_CLASSES

_ID = {name: i for i, name in enumerate(CAMVID_CLASSES)}
SKY, BUILDING, POLE, ROAD = _ID["Sky"], _ID["Building"], _ID["Pole"], _ID["Road"]
PAVEMENT, TREE, SIGN, FENCE = _ID["Pavement"], _ID["Tree"], _ID["SignSymbol"], _ID["Fence"]
CAR, PEDESTRIAN, BICYCLIST = _ID["Car"], _ID["Pedestrian"], _ID["Bicyclist"]

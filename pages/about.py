"""About CovidNet: what it is and is not, how it works, limitations, data and citations."""

import streamlit as st

import ui

ui.app_navigation()

st.title("About CovidNet")
ui.disclaimer()
trained = ", ".join(ui.trained()) or "none yet"
st.markdown(
    f"""
CovidNet is an open-source **research and teaching demo** that classifies frontal chest X-rays as
**COVID-19, Normal or Pneumonia** with convolutional networks of the ResNet, DenseNet, VGG and MobileNet families
(with trained weights here: {trained}) and shows which parts of the image drove the answer with a Grad-CAM
heatmap.

### What it is not
It is **not a medical device** and not a diagnostic tool. It has not been validated clinically. A chest X-ray
cannot rule COVID-19 in or out; a PCR or antigen test does. Never use CovidNet to make decisions about a person.

### How it works
1. Your file is read in memory (PNG, JPEG, TIFF, WebP, BMP, GIF or DICOM) and turned into one greyscale image.
2. The image is resized to the model's input size and normalised exactly as during training.
3. One forward and one backward pass give the class probabilities (calibrated by temperature scaling on a
   validation split) and the Grad-CAM heatmap for the chosen class.

### Limitations
- How the installed models started: {ui.how_started() or "no model is installed"}.
- What they learned from, as their metadata records it: {ui.training_images() or "not recorded"}. The model card
  counts these public images by source and split.
- Most pneumonia images are from young children, and COVID-19 images from adults: the models can partly tell
  *age and hospital* rather than disease. The model card measures this with occlusion and source-probe checks.
- Heatmaps show where the model looked, not where disease is. A heatmap on a marker, a tube or the image border
  is a warning sign, not an explanation.
- Out of scope: lateral views, CT slices, photographs of screens, other diseases and other body parts.

### Data and how to cite it
The training data comes from public collections: the COVID-19 Radiography Database (Chowdhury et al., 2020;
Rahman et al., 2021), the COVID-19 image data collection (Cohen et al., 2020, arXiv:2006.11988), COVID-CXNet
(Haghanifar et al., 2020, arXiv:2006.13807), Kermany et al. (2018, Cell 172(5), Mendeley Data, CC BY 4.0) and
NIH ChestX-ray8 (Wang et al., CVPR 2017). Licences per image are listed in the model card.
"""
)

"""inpaint: blind inpainting (MPN, EPN, IPN) and a U-Net baseline, on Lightning and Hydra."""

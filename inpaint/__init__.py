"""inpaint: blind inpainting (MPN, EPN, IPN) and a U-Net baseline, trained with Lightning, configured with Hydra."""

"""Stage 1, inputs: finding the snapshots and image pairs, reading colour images and ground truths
the way the thesis did, content hashes of input files, and the limits that refuse hostile input."""

"""What both adapters do alike."""
